"""Superset for Safeguard, driven from the pipeline environment.

Superset lives in its own virtualenv (``infra/superset/.venv``: SQLAlchemy 1.4, pandas 2.1
clash with Airflow 3), so this package never imports it: it runs Superset's commands as
subprocesses (``server``) and talks to the running server over HTTP (``client``, ``bundle``).
"""
