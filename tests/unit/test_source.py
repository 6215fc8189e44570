import subprocess

from dynosim import source


def make(folder, files):
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_plain_folder_honours_gitignore_including_nested_ones(tmp_path):
    make(
        tmp_path,
        {
            "Procfile": "web: x",
            "app.py": "",
            ".gitignore": "*.pyc\n/build/\n.env\n",
            "build/out.txt": "",
            "pkg/mod.py": "",
            "pkg/mod.pyc": "",
            "pkg/.gitignore": "local.cfg\n",
            "pkg/local.cfg": "",
            "local.cfg": "",
            ".env": "SECRET=1",
            ".git/config": "",
        },
    )
    assert source.select(tmp_path) == [
        ".gitignore",
        "Procfile",
        "app.py",
        "local.cfg",
        "pkg/.gitignore",
        "pkg/mod.py",
    ]


def test_slugignore_removes_files_and_ignores_negation(tmp_path):
    make(
        tmp_path,
        {
            "Procfile": "web: x",
            "app.py": "",
            "docs/big.psd": "",
            "tests/test_app.py": "",
            ".slugignore": "*.psd\n/tests\n!docs/big.psd\n# comment\n",
        },
    )
    assert source.select(tmp_path) == [".slugignore", "Procfile", "app.py"]


def test_git_repository_deploys_only_tracked_files(tmp_path):
    make(tmp_path, {"Procfile": "web: x", "app.py": "", "scratch.py": "", "sub/app/x.py": ""})
    git = ["git", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "Procfile", "app.py", "sub/app/x.py"], check=True)
    assert source.select(tmp_path) == ["Procfile", "app.py", "sub/app/x.py"]
    assert source.untracked(tmp_path) == ["scratch.py"]
    # an app folder inside a bigger repository: paths relative to the app folder
    assert source.select(tmp_path / "sub" / "app") == ["x.py"]


def test_plain_folder_has_nothing_untracked(tmp_path):
    make(tmp_path, {"Procfile": "web: x"})
    assert source.untracked(tmp_path) == []
