"""Where a study's results live: paths on a local disk or in a gs:// bucket, and the trial format.

`storage` is the file-system layer (local paths and gs:// through the cloud client, atomic writes,
listings, the local staging of remote directories), built from `paths`, `atomic`, `gcs` and
`staging`, whose public names it re-exports; `remote` picks the backend for a path and
mirrors a staged directory back; `trial_dir` is the trial-directory format every other part reads
and writes (status, rows, checkpoint metadata), with atomic state files. Pure Python: nothing here
imports TensorFlow or Keras, and these modules import only `tfplaybook.config` and each other, so
training, studies and analysis can all depend on them.
"""
