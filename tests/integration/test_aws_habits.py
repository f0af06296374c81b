"""AWS CLI habits: global flags before or after the sub-command; one order for region,
profile and endpoint (flag, environment, config); AWS_ENDPOINT_URL with no credentials
takes dummy ones on loopback; a missing profile is named with where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import Project

pytestmark = pytest.mark.integration

# No credentials anywhere: no variables, no files, no instance metadata.
NO_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def without_endpoint(project: Project) -> None:
    path = project.root / "northmigrate.toml"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(line for line in lines if "endpoint_url" not in line) + "\n")


def test_aws_endpoint_url_without_credentials_uses_dummy_ones(project: Project) -> None:
    """The README's promise: an emulator needs no credentials, wherever its URL comes from."""
    without_endpoint(project)
    env = {**NO_CREDENTIALS, "AWS_ENDPOINT_URL": project.endpoint}
    result = project.cli("provision", "--output", "json", env=env)
    assert result.returncode == 0, result.stderr
    assert result.json()["queue_url"].startswith(project.endpoint)
    project.queue_url()  # it is there, on that endpoint


def test_endpoint_url_flag_before_or_after_the_command(project: Project) -> None:
    without_endpoint(project)
    before = project.cli("--endpoint-url", project.endpoint, "provision", env=NO_CREDENTIALS)
    assert before.returncode == 0, before.stderr
    after = project.cli("status", "--once", "--endpoint-url", project.endpoint, "-o", "json")
    assert after.returncode == 0, after.stderr
    assert after.json()["main"]["visible"] == 0


def test_output_flag_before_the_command(project: Project) -> None:
    project.cli("provision", check=True)
    result = project.cli("--output", "json", "status", "--once")
    assert result.returncode == 0, result.stderr
    assert set(result.json()) >= {"main", "dlq"}
    # the command's own flag, after it, wins over the one before it
    table = project.cli("-o", "json", "status", "--once", "--output", "table")
    assert table.returncode == 0 and not table.stdout.lstrip().startswith("{")
    # a flag beats $NORTHMIGRATE_OUTPUT
    flagged = project.cli(
        "--output", "table", "status", "--once", env={"NORTHMIGRATE_OUTPUT": "json"}
    )
    assert not flagged.stdout.lstrip().startswith("{")


def test_a_missing_profile_is_named_with_its_source(project: Project) -> None:
    env = {**NO_CREDENTIALS, "AWS_PROFILE": "nope"}
    result = project.cli("status", "--once", env=env)
    assert result.returncode == 2
    assert "AWS profile 'nope' (set by AWS_PROFILE) is not in /nonexistent/aws-config" in (
        result.stderr
    )
    assert "None" not in result.stderr
    flagged = project.cli("status", "--once", "--profile", "later", env=env)
    assert "AWS profile 'later' (set by --profile)" in flagged.stderr


def doctor_region(project: Project, *args: str, env: dict[str, str] | None = None) -> str:
    """The region doctor's credentials check reports, with where it came from."""
    result = project.cli(*args, "--output", "json", env=env)
    [check] = [c for c in result.json()["checks"] if c["name"] == "credentials"]
    assert check["status"] == "pass", check
    return str(check["detail"]).split("region ", 1)[1].split(", ", 1)[0]


def test_region_flag_then_environment_then_config(project: Project) -> None:
    """The config says us-east-1 (the project's file); the environment and the flag beat it,
    and doctor says where the region came from."""
    unset = {"AWS_DEFAULT_REGION": ""}  # the tests' environment sets it
    from_file = doctor_region(project, "doctor", env=unset)
    assert from_file == "us-east-1 (from aws.region in northmigrate.toml line 2)"
    assert doctor_region(project, "doctor") == "us-east-1 (from AWS_DEFAULT_REGION)"
    env = {"AWS_REGION": "eu-west-1"}
    assert doctor_region(project, "doctor", env=env) == "eu-west-1 (from AWS_REGION)"
    flagged = doctor_region(project, "doctor", "--region", "ca-central-1", env=env)
    assert flagged == "ca-central-1 (from --region)"
    before = doctor_region(project, "--region", "ca-central-1", "doctor", env=env)
    assert before == "ca-central-1 (from --region)"


def test_global_flags_are_listed_on_every_command(tmp_path: Path, project: Project) -> None:
    text = project.cli("dlq", "redrive", "--help").stdout
    assert "Global options" in text
    for flag in ("--region", "--profile", "--endpoint-url"):
        assert flag in text
