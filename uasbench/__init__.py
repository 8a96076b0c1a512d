"""uasbench: benchmark unsupervised anomaly segmentation methods on multi-modal brain MRI."""
from uasbench.method import AnomalyMethod, MethodConfig
from uasbench.registry import create_method, list_methods, register_method

__all__ = ["AnomalyMethod", "MethodConfig", "create_method", "list_methods", "register_method"]
__version__ = "0.1.0"
