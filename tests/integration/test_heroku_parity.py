"""Nothing in a dyno that Heroku would not put there: no `.env` unless asked for (Heroku never
reads it; `heroku local` does), and no uWSGI settings of dynosim's own."""

from __future__ import annotations

from conftest import dynosim, tiny_app

UP = r"heroku\[web\.1\]: State changed from starting to up"
# uWSGI as Heroku's docs write it, minus die-on-term: uWSGI 2.0 reloads on SIGTERM
NO_DIE_ON_TERM = "web: uwsgi --http-socket :$PORT --master --wsgi-file app.py --callable app\n"
SHOW_DEBUG = (
    "import os\n\n\ndef app(environ, start_response):\n"
    '    start_response("200 OK", [("Content-Type", "text/plain")])\n'
    '    return [os.environ.get("DEBUG", "unset").encode()]\n'
)
SHELL_DOTENV = "# activate the local venv\nsource venv/bin/activate\nexport DEBUG=1\n"


def test_a_shell_dotenv_is_not_read_and_uwsgi_without_die_on_term_gets_r12(up, tmp_path):
    app_dir = tiny_app(tmp_path / "shellenv", NO_DIE_ON_TERM, **{"app.py": SHOW_DEBUG})
    (app_dir / ".env").write_text(SHELL_DOTENV)
    process = up(app_dir, "--grace", "2")
    process.wait_for(UP)
    assert process.output.count(" !     .env is not read (Heroku never reads it)") == 1
    assert process.get().text == "unset"  # the dyno does not see .env

    one_off = dynosim("run", "-a", "shellenv", "-x", 'echo "${DEBUG-unset}"')
    assert (one_off.returncode, one_off.stdout) == (0, "unset\n"), one_off.stderr
    asked = dynosim("run", "-a", "shellenv", "--env-file", "-x", "true")
    assert asked.returncode == 2
    assert asked.stderr == f'error: {app_dir}/.env:2: expected KEY=value (no "=" on this line)\n'

    # Heroku's SIGTERM makes uWSGI without die-on-term reload, not exit: killed after the grace
    assert process.stop() == 0
    r12 = r"heroku\[web\.1\]: Error R12 \(Exit timeout\) -> .*failed to exit within 2 seconds"
    process.wait_for(r12 + " of SIGTERM", unless=None, timeout=5)
    process.wait_for(r"heroku\[web\.1\]: Stopping \w+ processes with SIGKILL", unless=None)
    process.wait_for(r"heroku\[web\.1\]: Process exited with status 137", unless=None)

    # asked for, a malformed .env stops up before anything is built, naming file and line
    refused = dynosim("up", str(app_dir), "--env-file", "--port", "0", "--https-port", "0")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr == f'error: {app_dir}/.env:2: expected KEY=value (no "=" on this line)\n'
