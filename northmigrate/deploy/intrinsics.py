"""Placeholders for what only CloudFormation knows (the account, the region, a resource's
generated name), and their translation into intrinsic functions.

A template is built from the same ``StackSpec`` as an API deploy. Where a value is known only
once the stack exists, the spec carries a placeholder (``pseudo("Region")``,
``ref("WorkerFunction")``, ``ref("MainQueue.Arn")``), and ``resolve`` turns every text that
holds one into ``Ref``, ``Fn::GetAtt`` or ``Fn::Sub``. The placeholders hold no ``:`` or
``/``, so the checks that split ARNs (plugin statements) see well-formed ARNs.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"__CFN_(AWS|REF)_([A-Za-z0-9.]+?)__")


def pseudo(name: str) -> str:
    """A pseudo-parameter: ``pseudo("AccountId")`` stands for ``AWS::AccountId``."""
    return f"__CFN_AWS_{name}__"


def ref(name: str) -> str:
    """A parameter or resource (``Ref``), or a resource's attribute (``"Name.Attr"``)."""
    return f"__CFN_REF_{name}__"


PARTITION, REGION, ACCOUNT = pseudo("Partition"), pseudo("Region"), pseudo("AccountId")


def sqs_arn(name: str) -> str:
    return f"arn:{PARTITION}:sqs:{REGION}:{ACCOUNT}:{name}"


def _text(value: str) -> Any:
    whole = _TOKEN.fullmatch(value)
    if whole and whole.group(1) == "REF":
        target = whole.group(2)
        if "." in target:
            return {"Fn::GetAtt": target.split(".", 1)}
        return {"Ref": target}
    escaped = value.replace("${", "${!")  # a literal ${…} stays literal under Fn::Sub

    def substitute(match: re.Match[str]) -> str:
        kind, name = match.groups()
        return "${AWS::" + name + "}" if kind == "AWS" else "${" + name + "}"

    return {"Fn::Sub": _TOKEN.sub(substitute, escaped)}


def resolve(value: Any) -> Any:
    """``value`` with every text that holds a placeholder turned into an intrinsic function
    (keys are left alone: IAM condition keys, tag keys)."""
    if isinstance(value, dict):
        return {key: resolve(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item) for item in value]
    if isinstance(value, str) and _TOKEN.search(value):
        return _text(value)
    return value
