"""schemathesis hooks for scripts/check-api.sh.

An `Idempotency-Key` is unique per attempt (the API's contract: the same key
with a different request is 422 `idempotency-key-reused`), which a schema cannot
say, so generated values repeat ("0", "00", …) across unrelated requests. A
well-behaved client never does that: every valid key is made fresh right before
the call. Invalid keys (the negative cases) and missing ones are left alone.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"[!-~]{1,255}\Z")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name, value in list(headers.items()):
        if name.lower() == "idempotency-key" and isinstance(value, str) and VALID_KEY.match(value):
            headers[name] = f"check-api-{uuid.uuid4()}"
