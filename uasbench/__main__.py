from uasbench.cli import app

app(prog_name="uasbench")
