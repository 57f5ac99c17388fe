"""The tuning stage (Optuna): what a study searches (`space`), how a trial is scored
(`objective`), where studies live (`storage`, `storage_url`), a session (`study`), where it
stands (`summary`), the best configuration retrained (`retrain`), and its figures (`plots`)."""
