"""Post-study analysis: the playbook's checklist, plots and a report, from trial directories only.

Entry points: `report.write_report(study_dir)`, `checks.run_checks(study)`,
`export.write_trials_csv(study, path)` and `compare.decide(baseline, candidate, goal)`.
"""
