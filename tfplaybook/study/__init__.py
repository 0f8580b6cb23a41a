"""A study: many trials over a search space, run, tracked and survived, and the adoption reruns.

`tuner` is the study itself (a keras-tuner `BaseTuner` that trains each trial with
`tfplaybook.training.trainer` and asks a `tfplaybook.search` oracle for the next point);
`tracking` is the SQLite index of studies and their summaries; `resilience` and `recovery` let a
study survive killed processes, chiefs and workers; `adoption` decides whether a candidate beats
its baseline by rerunning both. Modules here may import `training`, `search`, `files` and the
top-level pure modules, and `adoption` the analysis' statistics; nothing below (training, files)
imports a study.
"""
