import json
import re

import pytest

from dynosim import appjson
from dynosim.appjson import AppJson, EnvVar
from dynosim.errors import ConfigError, ManifestError


def parse(data: dict) -> AppJson:
    return appjson.parse(json.dumps(data, indent=2))


def test_env_string_and_object_forms():
    spec = parse(
        {
            "env": {
                "WEB_CONCURRENCY": "5",
                "SECRET_KEY": {"description": "Signs cookies.", "generator": "secret"},
                "LOG_LEVEL": {"value": "info", "required": False},
            }
        }
    )
    assert spec.env == {
        "WEB_CONCURRENCY": EnvVar("WEB_CONCURRENCY", "5", False, None, None),
        "SECRET_KEY": EnvVar("SECRET_KEY", None, False, "secret", "Signs cookies."),
        "LOG_LEVEL": EnvVar("LOG_LEVEL", "info", False, None, None),
    }


def test_required_defaults_to_true_only_without_value_and_generator():
    spec = parse(
        {
            "env": {
                "API_TOKEN": {"description": "From the provider."},
                "EMPTY": {},
                "WITH_VALUE": {"value": ""},
                "GENERATED": {"generator": "secret"},
                "OPTIONAL": {"required": False},
                "FORCED": {"value": "x", "required": True},
            }
        }
    )
    required = {key for key, var in spec.env.items() if var.required}
    assert required == {"API_TOKEN", "EMPTY", "FORCED"}


def test_formation_and_postdeploy_string_form():
    spec = parse(
        {
            "formation": {"web": {"quantity": 2, "size": "standard-2x"}, "worker": {"quantity": 0}},
            "scripts": {"postdeploy": "python manage.py seed", "pr-predestroy": "ignored"},
        }
    )
    assert spec.formation == {"web": (2, "standard-2x"), "worker": (0, None)}
    assert spec.postdeploy == "python manage.py seed"


def test_postdeploy_object_form_uses_its_command():
    spec = parse({"scripts": {"postdeploy": {"command": "./seed", "size": "performance-l"}}})
    assert spec.postdeploy == "./seed"


def test_an_empty_manifest_gives_nothing_to_do():
    assert appjson.parse("{}") == AppJson(env={}, formation={}, postdeploy=None, warnings=[])


def test_known_keys_are_ignored_and_unknown_keys_are_warnings():
    spec = parse(
        {
            "name": "Small Sharp Tool",
            "addons": ["heroku-postgresql"],
            "buildpacks": [{"url": "heroku/python"}],
            "environments": {"test": {"scripts": {"test": "pytest"}}},
            "image": "heroku/python",
            "stack": "heroku-24",
            "cron": [],
            "env": {"A": {"value": "1", "sync": True}},
            "formation": {"web": {"quantity": 1, "autoscale": True}},
            "scripts": {"postdeploy": {"command": "./seed", "timeout": 60}},
        }
    )
    assert spec.warnings == [
        "app.json: cron: unknown key (ignored)",
        "app.json: env.A.sync: unknown key (ignored)",
        "app.json: formation.web.autoscale: unknown key (ignored)",
        "app.json: scripts.postdeploy.timeout: unknown key (ignored)",
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"env": []}, "env: expected an object"),
        ({"env": {"MY-VAR": "x"}}, "env.MY-VAR: not a config var name"),
        ({"env": {"__X": "x"}}, "env.__X: not a config var name"),
        ({"env": {"PORT": 5000}}, "env.PORT: expected a string or an object"),
        ({"env": {"A": {"value": 5}}}, "env.A.value: expected a string"),
        ({"env": {"A": {"description": None}}}, "env.A.description: expected a string"),
        (
            {"env": {"SECRET_KEY": {"required": "yes"}}},
            "env.SECRET_KEY.required: expected true or false",
        ),
        ({"env": {"A": {"generator": "uuid"}}}, 'env.A.generator: expected "secret"'),
        ({"formation": {"web": 1}}, "formation.web: expected an object"),
        ({"formation": {"my web": {"quantity": 1}}}, "formation.my web: not a process type name"),
        ({"formation": {"web": {}}}, "formation.web.quantity: expected a whole number >= 0"),
        ({"formation": {"web": {"quantity": -1}}}, "formation.web.quantity: expected a whole"),
        ({"formation": {"web": {"quantity": "2"}}}, "formation.web.quantity: expected a whole"),
        ({"formation": {"web": {"quantity": 1.5}}}, "formation.web.quantity: expected a whole"),
        ({"formation": {"web": {"quantity": True}}}, "formation.web.quantity: expected a whole"),
        (
            {"formation": {"web": {"quantity": 1, "size": 2}}},
            "formation.web.size: expected a string",
        ),
        ({"scripts": "seed"}, "scripts: expected an object"),
        ({"scripts": {"postdeploy": ["seed"]}}, "scripts.postdeploy: expected a command"),
        ({"scripts": {"postdeploy": "  "}}, "scripts.postdeploy: expected a command"),
        ({"scripts": {"postdeploy": {"size": "eco"}}}, "scripts.postdeploy.command: expected a"),
    ],
)
def test_schema_errors_name_the_file_and_key_path(data, message):
    with pytest.raises(ManifestError) as caught:
        parse(data)
    assert str(caught.value).startswith(f"app.json: {message}")


def test_invalid_json_names_the_line():
    with pytest.raises(ManifestError, match=r"^app\.json:3: invalid JSON \(.+\)$"):
        appjson.parse('{\n  "env": {"A": "1"}\n  "formation": {}\n}')
    with pytest.raises(ManifestError, match="^app.json: expected a JSON object at the top level$"):
        appjson.parse("[]")


def test_load_reads_app_json_and_none_without_it(tmp_path):
    assert appjson.load(tmp_path) is None
    (tmp_path / "app.json").write_text('{"env": {"A": "1"}}', encoding="utf-8")
    assert appjson.load(tmp_path).env["A"].value == "1"


def test_load_errors_name_the_file(tmp_path):
    (tmp_path / "app.json").write_text('{"formation": {"web": {"quantity": -1}}}')
    expected = f"{tmp_path / 'app.json'}: formation.web.quantity: expected a whole number >= 0"
    with pytest.raises(ManifestError) as caught:
        appjson.load(tmp_path)
    assert str(caught.value) == expected


def test_initial_config_takes_provided_then_value_then_a_generated_secret():
    spec = parse(
        {
            "env": {
                "LOG_LEVEL": "info",
                "WEB_CONCURRENCY": {"value": "2"},
                "SECRET_KEY": {"generator": "secret"},
                "API_TOKEN": {"required": True},
                "SENTRY_DSN": {"required": False},
            }
        }
    )
    provided = {"WEB_CONCURRENCY": "4", "API_TOKEN": "t0k", "SECRET_KEY": "mine", "EXTRA": "x"}
    assert appjson.initial_config(spec, provided) == {
        "LOG_LEVEL": "info",
        "WEB_CONCURRENCY": "4",
        "SECRET_KEY": "mine",
        "API_TOKEN": "t0k",
    }


def test_generated_secrets_are_64_hex_characters_and_differ_each_time():
    spec = parse({"env": {"SECRET_KEY": {"generator": "secret"}}})
    first = appjson.initial_config(spec, {})["SECRET_KEY"]
    second = appjson.initial_config(spec, {})["SECRET_KEY"]
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert first != second


def test_an_empty_provided_value_counts_as_provided():
    spec = parse({"env": {"API_TOKEN": {}}})
    assert appjson.initial_config(spec, {"API_TOKEN": ""}) == {"API_TOKEN": ""}


def test_missing_required_vars_are_one_error_naming_them_all():
    spec = parse({"env": {"SECRET_KEY": {}, "OK": "1", "API_TOKEN": {"description": "x"}}})
    with pytest.raises(ConfigError) as caught:
        appjson.initial_config(spec, {"OK": "2"})
    assert str(caught.value) == (
        "app.json: env.SECRET_KEY, env.API_TOKEN are required and have no value;"
        ' give them a "value" in app.json, or put them in the app\'s .env and run'
        " dynosim up --env-file"
    )
    with pytest.raises(
        ConfigError, match=r"^app.json: env.API_TOKEN is required and has no value;"
    ):
        appjson.initial_config(spec, {"SECRET_KEY": "s"})
