"""Getting files into ``raw``: land (stream + COPY), validate (Great Expectations), load.

The stages are separate functions so that Airflow can run them as separate tasks and the CLI
can run them back to back, through the same code path.
"""
