"""A real study with diverged trials, its report rendered by headless Chromium into PNG screenshots.

Run: python bench/report_screenshot.py [--workdir DIR] [--out docs/report_screenshot]

The default digits_cnn study, with the learning-rate range widened to 1e-3 .. 30 so that some of
its 8 trials diverge (the playbook wants the range wide enough to find the edge; checklist 44).
The report is then shown as a user sees it: Chromium loads report.html and writes two PNGs, the
top of the page (the study's question, the summary and the checks) and the training-curves
section (the loss panel, where diverged trials are drawn clipped at the top edge with a marker
instead of stretching the axis). Prints how many trials diverged; docs/plots.md shows the result.
"""

import argparse
import os
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CHROMIUM = "/usr/bin/chromium"


def screenshot(url, path, width, height, profile):
    """Chromium's own screenshot of `url` in a width x height window."""
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        f"--screenshot={path}",
        url,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=180)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="")
    parser.add_argument("--out", default=os.path.join(REPO, "docs", "report_screenshot"))
    parser.add_argument("--max_learning_rate", type=float, default=30.0)
    parser.add_argument("--study", default="", help="screenshot this finished study's report")
    args = parser.parse_args()
    workdir = args.workdir or tempfile.mkdtemp(prefix="report_screenshot_")
    study_dir = args.study or run_study(os.path.join(workdir, "study"), args.max_learning_rate)
    profile = os.path.join(workdir, "chromium-profile")
    page = os.path.join(study_dir, "report.html")
    screenshot("file://" + page, args.out + "_top.png", 1100, 1500, profile)
    # The same page with every other section hidden, so the loss panel is at the top.
    with open(page) as f:
        html = f.read()
    only_curves = os.path.join(workdir, "report_training_curves.html")
    with open(only_curves, "w") as f:
        hide = "<style>section:not(#training-curves), nav, h1 { display: none; }</style>"
        f.write(html.replace("</head>", hide + "</head>", 1))
    screenshot("file://" + only_curves, args.out + "_curves.png", 1100, 540, profile)
    print(f"wrote {args.out}_top.png and {args.out}_curves.png")


def run_study(study_dir, max_learning_rate):
    """The digits_cnn study with the learning-rate range widened; returns its directory."""
    import tfplaybook
    from tfplaybook import config as config_lib

    config = config_lib.load_experiment(os.path.join(REPO, "experiments", "digits_cnn.py"))
    for dim in config["study"]["search_space"]:
        if dim["name"] == "optimizer.learning_rate":
            dim["max"] = max_learning_rate
    result = tfplaybook.tune(config=config, workdir=study_dir, verbose=False)
    statuses = [t.status for t in result.trials]
    print(f"{len(statuses)} trials, {statuses.count('diverged')} diverged; study in {study_dir}")
    return result.workdir


if __name__ == "__main__":
    main()
