"""The retry policy (docs/dashscope.md, "Errors" and "Client behaviour"), as plain data in and out."""

from __future__ import annotations

import pytest

from dropscribe.core.retry import Verdict, backoff_s, classify

RETRY, REJECT, ACCOUNT = Verdict.RETRY, Verdict.REJECT, Verdict.ACCOUNT

CLASSIFY_CASES = [
    # no answer at all: refused, reset, timed out
    (None, None, "ConnectError: connection refused", RETRY),
    (None, "ReadTimeout", "timed out", RETRY),
    # throttling
    (429, "Throttling", "Requests throttling triggered.", RETRY),
    (429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later.", RETRY),
    (429, "Throttling.AllocationQuota", "Allocated quota exceeded, please increase your quota limit.", RETRY),
    (429, "Throttling.AllocationQuota", "Free allocated quota exceeded.", ACCOUNT),
    (429, "Throttling.AllocationQuota", "free tier used up", ACCOUNT),
    # account, billing, rights
    (429, "LimitRequests", "", ACCOUNT),
    (429, "PrepaidBillOverdue", "", ACCOUNT),
    (429, "PostpaidBillOverdue", "", ACCOUNT),
    (429, "CommodityNotPurchased", "", ACCOUNT),
    (400, "Arrearage", "Access denied, please make sure your account is in good standing.", ACCOUNT),
    (401, "InvalidApiKey", "Invalid API-key provided.", ACCOUNT),
    (403, "AccessDenied", "", ACCOUNT),
    (403, "Model.AccessDenied", "", ACCOUNT),
    (403, "Workspace.AccessDenied", "", ACCOUNT),
    (403, "AccessDenied.Unpurchased", "", ACCOUNT),
    (401, "Unknown", "<html>401</html>", ACCOUNT),
    (403, None, "", ACCOUNT),
    # a wrong model or workspace fails every file alike: configuration, so pause
    (404, "ModelNotFound", "Model not found", ACCOUNT),
    (404, "WorkSpaceNotFound", "", ACCOUNT),
    (404, "Unknown", "<html>Not Found</html>", ACCOUNT),
    (302, "Unknown", "", ACCOUNT),
    # server trouble
    (408, "RequestTimeOut", "Request timed out, please try again later.", RETRY),
    (408, None, "", RETRY),
    (500, "InternalError", "An internal error has occured", RETRY),
    (500, "InternalError.Algo", "", RETRY),
    (500, "InternalError.Timeout", "", RETRY),
    (500, "SystemError", "", RETRY),
    (502, "Unknown", "<html><body>502 Bad Gateway</body></html>", RETRY),
    (503, "ModelUnavailable", "Model is unavailable, please try again later.", RETRY),
    (503, "ServiceUnavailable", "", RETRY),
    (504, "GatewayTimeout", "", RETRY),
    (599, "Unknown", "", RETRY),
    (415, "BadRequest.InputDownloadFailed", "Failed to download the input file.", RETRY),
    # a 200 that is not a result: a business error we do not know, or a body of the wrong shape
    (200, "SomethingNew", "", RETRY),
    (200, "MalformedResponse", "output.choices is empty", RETRY),
    (200, "InvalidParameter", "bad language", REJECT),
    # the input is refused for good
    (400, "InvalidParameter", "Required parameter(s) missing or invalid", REJECT),
    (400, "InvalidParameter.DataInspection", "The media format is not supported", REJECT),
    (400, "DataInspectionFailed", "Input or output data may contain inappropriate content.", REJECT),
    (400, "invalid_parameter_error", "The provided URL does not appear to be valid", REJECT),
    (400, "InvalidURL", "", REJECT),
    (400, "BadRequest.EmptyInput", "", REJECT),
    (400, "InternalError.Algo", "Missing Content-Length of multimodal url.", REJECT),
    (413, "BadRequest.TooLarge", "Payload Too Large.", REJECT),
    (413, "Unknown", "<html>413</html>", REJECT),
    (415, "BadRequest.UnsupportedFileFormat", "Input file format is not supported.", REJECT),
    (404, "SomethingNotFound", "", REJECT),
    (400, None, "", REJECT),
]


class TestClassify:
    @pytest.mark.parametrize(("status", "code", "message", "expected"), CLASSIFY_CASES)
    def test_verdict(self, status: int | None, code: str | None, message: str, expected: Verdict) -> None:
        """Each documented (status, code, message) maps to its verdict (docs/dashscope.md, "Errors")."""
        assert expected == classify(status, code, message)

    def test_code_wins_over_status(self) -> None:
        """A known code decides even under an unexpected status (a 400 Arrearage pauses, not rejects)."""
        assert classify(400, "Arrearage", "") == ACCOUNT
        assert classify(400, "Throttling", "") == RETRY


BACKOFF_CASES = [
    # attempt, base, cap, jitter, retry_after, expected
    (1, 1.0, 60.0, 0.5, None, 1.0),
    (2, 1.0, 60.0, 0.5, None, 2.0),
    (3, 1.0, 60.0, 0.5, None, 4.0),
    (7, 1.0, 60.0, 0.5, None, 60.0),
    (1000, 1.0, 60.0, 0.5, None, 60.0),
    (0, 2.0, 60.0, 0.5, None, 2.0),
    (3, 1.0, 60.0, 0.0, None, 3.0),
    (3, 1.0, 60.0, 1.0, None, 5.0),
    (20, 1.0, 60.0, 0.0, None, 45.0),
    (20, 1.0, 60.0, 1.0, None, 60.0),
    (1, 1.0, 60.0, 0.5, 10.0, 10.0),
    (1, 1.0, 60.0, 0.5, 0.2, 1.0),
    (1, 1.0, 60.0, 0.5, 120.0, 120.0),
    (1, 1.0, 60.0, 0.5, 86400.0, 3600.0),
    (1, 1.0, 60.0, 0.5, -5.0, 1.0),
]


class TestBackoff:
    @pytest.mark.parametrize(
        ("attempt", "base_s", "cap_s", "jitter", "retry_after_s", "expected"), BACKOFF_CASES
    )
    def test_schedule(
        self,
        attempt: int,
        base_s: float,
        cap_s: float,
        jitter: float,
        retry_after_s: float | None,
        expected: float,
    ) -> None:
        """Doubling from base_s, ±25 % jitter, at most cap_s; Retry-After a floor, bounded at one hour."""
        actual = backoff_s(attempt, base_s=base_s, cap_s=cap_s, jitter=jitter, retry_after_s=retry_after_s)
        assert expected == pytest.approx(actual)

    def test_never_above_cap(self) -> None:
        """Whatever the attempt and jitter, the wait stays within cap_s."""
        waits = [
            backoff_s(attempt, base_s=2.0, cap_s=300.0, jitter=jitter / 10)
            for attempt in range(1, 40)
            for jitter in range(11)
        ]
        assert max(waits) == 300.0
        assert min(waits) == 1.5

    @pytest.mark.parametrize("jitter", [-0.1, 1.5])
    def test_jitter_out_of_range(self, jitter: float) -> None:
        """A jitter outside [0, 1] is a caller bug and says so."""
        with pytest.raises(ValueError, match="jitter"):
            backoff_s(1, base_s=1.0, cap_s=10.0, jitter=jitter)
