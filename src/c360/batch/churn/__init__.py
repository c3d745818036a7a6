"""The churn model: point-in-time training set, model, evaluation, charts."""
