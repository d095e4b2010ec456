"""CodeBuild projects and CodePipeline pipelines in moto, and a counter of the API calls a client makes.

moto 5.2.5 keeps a build IN_PROGRESS only until it is read: ``BatchGetBuilds`` marks every build it returns
SUCCEEDED, with a start time of when it was started (the real clock). Its pipeline executions are Succeeded
from the start. So moto serves the "everything finished" answers; in-progress builds and executions, start
times and errors come from botocore's Stubber on a real client.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

ACCOUNT = "123456789012"


def create_codebuild_project(client: Any, name: str) -> None:
    client.create_project(
        name=name,
        source={"type": "S3", "location": "bucket/source.zip"},
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "LINUX_CONTAINER",
            "image": "aws/codebuild/standard:7.0",
            "computeType": "BUILD_GENERAL1_SMALL",
        },
        serviceRole=f"arn:aws:iam::{ACCOUNT}:role/codebuild-{name}",
    )


def create_pipeline(iam: Any, client: Any, name: str) -> None:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "codepipeline.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = iam.create_role(RoleName=f"pipeline-{name}", AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    action = {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}
    client.create_pipeline(
        pipeline={
            "name": name,
            "roleArn": role["Arn"],
            "artifactStore": {"type": "S3", "location": "artifacts"},
            "stages": [
                {"name": "Source", "actions": [{"name": "Source", "actionTypeId": action, "configuration": {}}]},
                {
                    "name": "Apply",
                    "actions": [
                        {
                            "name": "Apply",
                            "actionTypeId": {**action, "category": "Build", "provider": "CodeBuild"},
                            "configuration": {"ProjectName": "infra"},
                        }
                    ],
                },
            ],
        }
    )


class CallCounter:
    """Counts a client's API calls by operation and target (``projectName``/``pipelineName``/``ids``)."""

    def __init__(self, client: Any) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        service = client.meta.service_model.service_id.hyphenize()
        # before-parameter-build fires once per API call with the call's own parameters (retries do not repeat it).
        client.meta.events.register(f"before-parameter-build.{service}.*", self._count)

    def _count(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        target = params.get("projectName") or params.get("pipelineName") or ",".join(params.get("ids", []))
        self.calls[(model.name, str(target))] += 1

    def total(self, operation: str) -> int:
        return sum(n for (name, _), n in self.calls.items() if name == operation)
