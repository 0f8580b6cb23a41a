"""One trial's training: the user's task, its data and model, and the loop that trains it.

`task` is the contract with the user's code (build_model, make_dataset, defaults as data) over the
`models` and `datasets` registries (`digits_builder` is the embedded offline dataset); `data` is the
tf.data pipeline, `metrics` the loss and metrics from Keras identifiers; `optimizers`, `schedules`,
`batchnorm` and `ema` are the playbook's update rules, learning-rate schedules, cross-replica batch
norm (`bn_check` its per-replica diagnostic) and weight averaging; `strategy` picks the
tf.distribute strategy; `trainer` is the orbit-style loop, over `engine` (the traced steps and their
cache across trials), `resume` (what a resumed run restores), `records` (each loop's measurements
and TensorBoard scalars) and `divergence` (what ends a run early); `checkpoints` and `selection`
keep the N best checkpoints and choose among them, `best_export` exports the best one, `workdir`
prepares and checks a trial's work directory (writable, not full, the same config) and recovers its
status. Modules here may import `tfplaybook.config`, `choices`, `progress`, `internals` and
`tfplaybook.files`, never a study or an analysis: a trial trains the same whether a study, a
procedure or the Python API started it. TensorFlow and Keras are imported inside functions, so the
registries load without them.
"""
