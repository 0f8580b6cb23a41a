"""Post-study analysis: the playbook's checklist, plots and a report, from trial directories only.

Entry points: `report.write_report(study_dir)`, `checks.run_checks(study)`,
`export.write_trials_csv(study, path)` and `compare.decide(baseline, candidate, goal)`.

Modules: `study_data` loads a study directory into plain data (`keras_tuner_study` does the same
for a keras-tuner project); `checks` (a package, one module per topic) runs the post-study
checklist on it, with `periodicity` (checklist 85), `budget` (how many trials, checklist 103)
and `question` (the scientific comparison the study answers); `advise` (a package) turns the
checks into the next round's experiment file; `plots` draws the figures with matplotlib;
`report` (a package) writes report.html and report.md from all of these; `export` writes
trials.csv and `compare` decides whether to adopt a candidate (checklist 57-61). Everything but
`plots` and `report` is pure Python and NumPy/SciPy. Analysis reads trial directories only: it
may import `tfplaybook.files`, the `tfplaybook.search` spaces, `config` and `validation`, and
`training.task` only for `task.declared` (advise checks a config without the user's code); it
never imports training code that runs, TensorFlow, or a study (`tfplaybook.study`).
"""
