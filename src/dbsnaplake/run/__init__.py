"""Running the stages: the pipeline (their order and resume), group retries, executors, the run lock, status and
the tables of an export."""
