"""Apply a finished run to new scans (``uasbench predict``): anomaly maps and segmentations as NIfTI
volumes on each scan's own grid. ``cases`` finds the scans, ``apply`` scores them as the run would,
``nifti`` writes the results."""
from uasbench.predict.apply import CasePrediction, CaseSummary, TrainedRun, predict, predict_scan

__all__ = ["CasePrediction", "CaseSummary", "TrainedRun", "predict", "predict_scan"]
