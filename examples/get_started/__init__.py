"""The CMF "get started" pipeline: prepare -> featurize -> train -> evaluate.

The step functions in :mod:`examples.get_started.steps` are plain Python; the
Prefect flow (``flows/``), the Airflow DAG (``dags/``) and the seed-API script
(:mod:`examples.get_started.seed_api`) all call them.
"""
