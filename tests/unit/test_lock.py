"""Given lock-table items as Terraform, Terragrunt or a stranger wrote them, classify_item tells them apart."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from factories import NOW, digest_item, go_time, lock_info, lock_item
from tflock_reaper.domain.lock import DigestRecord, LockRecord, SkippedItem, classify_item

REAL = (
    '{"ID":"8a3cd4e3-bc8e-a4d4-ff39-cac4e736080d","Operation":"OperationTypeApply","Info":"","Who":"root@vm",'
    '"Version":"1.15.5","Created":"2026-11-26T17:28:58.621994866Z","Path":"state-bucket/dev/terraform.tfstate"}'
)


def test_real_terraform_lock_is_parsed_and_raw_info_kept_byte_for_byte():
    item = {"LockID": {"S": "state-bucket/dev/terraform.tfstate"}, "Info": {"S": REAL}}
    lock = classify_item(item, datetime(2026, 11, 26, 18, tzinfo=UTC))
    assert isinstance(lock, LockRecord)
    assert lock.raw_info == REAL
    assert lock.lock_id == "8a3cd4e3-bc8e-a4d4-ff39-cac4e736080d"
    assert lock.info.created == datetime(2026, 11, 26, 17, 28, 58, 621994, tzinfo=UTC)
    assert (lock.bucket, lock.state_key, lock.workspace) == ("state-bucket", "dev/terraform.tfstate", "default")


@pytest.mark.parametrize(
    ("created", "expected"),
    [
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("2026-11-26T10:00:00.5Z", datetime(2026, 11, 26, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-26T10:00:00.123456789Z", datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-26T11:00:00+01:00", datetime(2026, 11, 26, 10, tzinfo=UTC)),
    ],
)
def test_created_with_zero_to_nine_fractional_digits(created, expected):
    lock = classify_item(lock_item(created=created), NOW)
    assert isinstance(lock, LockRecord)
    assert lock.info.created == expected


def test_workspace_path_and_empty_user():
    path = "tf-state/env:/staging/app/terraform.tfstate"
    lock = classify_item(lock_item(path, who="@runner-pod-7f9c"), NOW)
    assert isinstance(lock, LockRecord)
    assert lock.workspace == "staging"
    assert lock.info.who == "@runner-pod-7f9c"


def test_free_string_operations_are_locks_too():
    lock = classify_item(lock_item(operation="state-mv"), NOW)
    assert isinstance(lock, LockRecord)
    assert lock.info.operation == "state-mv"


def test_digest_items_with_and_without_digest_are_recognised():
    with_digest = classify_item(digest_item(), NOW)
    terragrunt = classify_item({"LockID": {"S": "tf-state/app.tfstate-md5"}}, NOW)
    assert isinstance(with_digest, DigestRecord)
    assert with_digest.digest == "9f86d081884c7d659a2feaa0c55ad015"
    assert isinstance(terragrunt, DigestRecord)
    assert terragrunt.digest is None


def test_a_state_key_ending_in_md5_is_a_lock_when_it_has_info():
    lock = classify_item(lock_item("tf-state/x-md5"), NOW)
    assert isinstance(lock, LockRecord)
    assert isinstance(classify_item(digest_item("tf-state/x-md5"), NOW), DigestRecord)


def _info_item(raw, path="tf-state/a.tfstate"):
    return {"LockID": {"S": path}, "Info": raw}


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        (_info_item({"S": "{not json"}), "Info is not valid JSON"),
        (_info_item({"N": "42"}), "Info is not a string (DynamoDB type N)"),
        (_info_item({"S": "[1, 2]"}), "Info JSON is a list, not an object"),
        (_info_item({"S": json.dumps({"ID": "x"})}), "Operation: Field required"),
        (
            _info_item({"S": json.dumps(lock_info("tf-state/a.tfstate", created="yesterday"))}),
            "'yesterday' is not an RFC 3339 timestamp",
        ),
        (
            _info_item({"S": json.dumps(lock_info("tf-state/a.tfstate", created="2026-11-26T10:00:00"))}),
            "is not an RFC 3339 timestamp",
        ),
        (_info_item({"S": json.dumps(lock_info("tf-state/a.tfstate", Created=1764150000))}), "must be an RFC 3339"),
        (_info_item({"S": json.dumps(lock_info("tf-state/a.tfstate", Who=None))}), "Who: Input should be a valid"),
        (_info_item({"S": json.dumps(lock_info("tf-state/a.tfstate", ID=""))}), "ID: String should have at least"),
        (_info_item({"S": json.dumps(lock_info("tf-state/other.tfstate"))}), "differs from LockID"),
        (
            _info_item({"S": json.dumps(lock_info("tf-state/a.tfstate", created=NOW + timedelta(hours=1)))}),
            "in the future: holder clock skewed",
        ),
        ({"LockID": {"S": "tf-state/a"}, "Info": {"S": "{}"}, "expires": {"N": "1"}}, "unexpected attributes"),
        ({"LockID": {"S": "tf-state/a.tfstate"}}, "no Info attribute"),
        ({"LockID": {"S": "tf-state/a.tfstate"}, "Owner": {"S": "me"}}, "unexpected attributes: Owner"),
        ({"LockID": {"N": "7"}, "Info": {"S": "{}"}}, "LockID is missing or not a string"),
        ({"Info": {"S": "{}"}}, "LockID is missing"),
        ({"LockID": {"S": "no-slash"}, "Info": {"S": "{}"}}, "not of the form <bucket>/<state path>"),
        ({"LockID": {"S": "tf-state/a-md5"}, "Digest": {"N": "1"}}, "Digest is not a string"),
    ],
)
def test_malformed_and_foreign_items_are_skipped_with_their_reason(item, reason):
    result = classify_item(item, NOW)
    assert isinstance(result, SkippedItem)
    assert reason in result.reason
    assert result.item is item


def test_created_just_inside_the_future_tolerance_is_accepted():
    lock = classify_item(lock_item(created=go_time(NOW + timedelta(minutes=4))), NOW)
    assert isinstance(lock, LockRecord)
