"""`python -m mlops_app` is the same as the `mlops-app` command."""

from mlops_app.cli import main

main()
