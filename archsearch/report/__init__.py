"""Studies and runs → records → figures and pages; the optuna-dashboard launcher."""
