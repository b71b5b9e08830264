"""AWS Secrets Manager as a secret source, read exactly as Airflow's SecretsManagerBackend reads it.

- Names: ``<prefix><sep><id>`` (no prefix: the id alone); a prefix of None disables that kind; an id
  that does not match the kind's ``*_lookup_pattern`` (case-insensitive ``re.match``) is not looked up;
  with a team, ``<prefix><sep><team>--<id>`` is tried first; in multi-team mode an id containing ``--``
  is refused. All as the official backend.
- A connection secret is a connection URI (returned verbatim) or a JSON object whose keys are mapped onto
  connection parts by SecretsManagerBackend's words (``user`` -> login, ``server`` -> host, ...,
  extended by ``extra_conn_words``). A Kong connection is that JSON form plus ``kong_auth``.
- Every read asks for ``VersionStage="AWSCURRENT"`` explicitly; the record's version is the VersionId.
  ``read_pending`` reads the AWSPENDING version of one secret: only when the identity provider refused the
  AWSCURRENT credential (a rotation that changed the IdP before moving AWSCURRENT), never otherwise.
- Throttling, 5xx answers and dropped connections are retried (tenacity, ``retry.py``) within the resolution
  deadline, with per-attempt timeouts derived from it; botocore's own retries are off, so that the attempts
  and their back-off stay inside the deadline. Each call (with the client's first build: the credential
  chain, STS) runs in a worker thread that the resolution stops waiting for at the deadline, so that a peer
  dripping its answer, or a credential provider that hangs, cannot hold it longer. They fail as
  ``SourceError`` (reason ``"aws_unavailable"``, ``"aws_unreachable"`` or ``"deadline"``), which lets the
  resolver serve the last-read connection and its still-valid token.
- boto3 is imported here, lazily, and nowhere else on the ``source: "aws"`` path; one client per
  process (built on first use, again after a fork), with role assumption through STS when ``role_arn``
  is set (credentials refreshed by botocore before they expire).
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from typing import TYPE_CHECKING, Any, Literal

from kong_secrets_backend.airflow_bridge.compat import multi_team_enabled
from kong_secrets_backend.airflow_bridge.masking import mask
from kong_secrets_backend.errors import DeadlineExceeded, SecretFormatError, SourceError
from kong_secrets_backend.sources import SecretKind, SecretRecord
from kong_secrets_backend.transport.guard import call_within
from kong_secrets_backend.transport.retry import MAX_ATTEMPTS, with_retries

if TYPE_CHECKING:
    from kong_secrets_backend.sources.aws_settings import AwsSettings
    from kong_secrets_backend.transport.deadline import Deadline

log = logging.getLogger(__name__)

TEAM_SEP = "--"
# SecretsManagerBackend's role session name (its connection id is "SecretsManagerBackend__connection"):
# kept, so that IAM trust policies and CloudTrail filters written for it still match.
ROLE_SESSION_NAME = "Airflow_SecretsManagerBackend__connection"
# Error codes SecretsManagerBackend treats as "no such secret" (it returns None for them).
_NOT_FOUND = ("ResourceNotFoundException", "InvalidParameterException", "InvalidRequestException")
_DENIED = ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException", "InvalidClientTokenId")
# Answers worth another attempt (botocore's standard retry mode treats the same codes as throttling or transient).
_TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)
PENDING = "AWSPENDING"


class AwsSource:
    """Reads secrets from AWS Secrets Manager the way ``SecretsManagerBackend`` does."""

    def __init__(self, settings: AwsSettings, *, deadline: float = 10.0) -> None:
        self.settings = settings
        # per attempt: MAX_ATTEMPTS attempts and their back-off stay within the deadline
        self._timeout = max(0.5, min(5.0, deadline / (MAX_ATTEMPTS + 1)))
        self._client: Any = None
        self._pid = 0
        self._lock = threading.Lock()
        self.client_builds = 0  # observability and tests
        mask(*settings.secret_values())

    def after_fork(self) -> None:
        """In a forked child: a fresh lock, and a new client on first use (boto3 clients are not fork-safe)."""
        self._lock = threading.Lock()
        self._client, self._pid = None, 0

    def __repr__(self) -> str:
        s = self.settings
        return f"AwsSource(region_name={s.region_name!r}, endpoint_url={s.endpoint_url!r}, role_arn={s.role_arn!r})"

    # -- names, as SecretsManagerBackend builds them ---------------------------------------------

    def _prefix_and_pattern(self, kind: SecretKind) -> tuple[str | None, str | None]:
        s = self.settings
        return {
            "connections": (s.connections_prefix, s.connections_lookup_pattern),
            "variables": (s.variables_prefix, s.variables_lookup_pattern),
            "config": (s.config_prefix, s.config_lookup_pattern),
        }[kind]

    def _names(self, kind: SecretKind, key: str, team_name: str | None) -> list[str]:
        """Secret names to try in order, or [] when this kind is disabled or the key is not looked up."""
        prefix, pattern = self._prefix_and_pattern(kind)
        if prefix is None:
            return []
        if TEAM_SEP in key and multi_team_enabled():
            log.warning(
                "Secret id %r contains %r, which separates the team name from the secret id in a team scoped "
                "secret name. Such an id is ambiguous and is not looked up.",
                key,
                TEAM_SEP,
            )
            return []
        if pattern and not re.match(pattern, key, re.IGNORECASE):
            log.debug("Skipping lookup of %r: does not match the %s lookup pattern", key, kind)
            return []
        sep = self.settings.sep
        names = []
        if prefix and team_name and kind != "config":
            names.append(f"{prefix}{sep}{team_name}{TEAM_SEP}{key}")
        names.append(f"{prefix}{sep}{key}" if prefix else key)
        return names

    def describe(self, kind: SecretKind, key: str, team_name: str | None = None) -> str:
        names = self._names(kind, key, team_name)
        if names:
            return ", ".join(names)
        prefix, _ = self._prefix_and_pattern(kind)
        return f"(no {kind} prefix configured)" if prefix is None else f"({kind} lookup skipped for this id)"

    # -- reading ----------------------------------------------------------------------------------

    def read(self, kind: SecretKind, key: str, deadline: Deadline, team_name: str | None = None) -> SecretRecord | None:
        names = self._names(kind, key, team_name)
        for name in names:
            found = self._get(name, deadline)
            if found is None:
                continue
            value, version = found
            if kind != "connections":
                return SecretRecord(data={"value": value}, path=name, version=version)
            return self._connection_record(value, name, version)
        log.debug("%s %r not found in AWS Secrets Manager at %s", kind, key, ", ".join(names) or "-")
        return None

    def read_path(self, path: str, deadline: Deadline) -> SecretRecord | None:
        name = path.lstrip("/")
        found = self._get(name, deadline)
        if found is None:
            return None
        value, version = found
        data = _json_object(value, name)
        return SecretRecord(data=data, path=name, version=version)

    def read_pending(
        self, kind: Literal["connections", "credentials"], name: str, deadline: Deadline
    ) -> SecretRecord | None:
        """The AWSPENDING version of the secret ``name`` (a record's path, as read), parsed as ``read`` (a
        connection) or ``read_path`` (a shared credential) parses it; None when it has no AWSPENDING version.

        Only for a credential the identity provider refused: a rotation may have changed the IdP before it
        moved AWSCURRENT. The resolver tries the result once, and only if it differs from AWSCURRENT.
        """
        name = name.lstrip("/")
        found = self._get(name, deadline, stage=PENDING)
        if found is None:
            return None
        value, version = found
        if kind == "connections":
            return self._connection_record(value, name, version)
        return SecretRecord(data=_json_object(value, name), path=name, version=version)

    def _connection_record(self, value: str, name: str, version: str | None) -> SecretRecord:
        if not value.strip().startswith("{"):
            return SecretRecord(data={}, path=name, version=version, plain=value)  # a connection URI
        raw = _json_object(value, name)
        fields = {
            part: next((v for k, v in raw.items() if k in words), None)
            for part, words in self.settings.conn_field_words.items()
        }
        data = {**fields, "kong_auth": raw["kong_auth"]} if "kong_auth" in raw else fields
        return SecretRecord(data=data, path=name, version=version, plain=json.dumps(fields))

    def _get(self, name: str, deadline: Deadline, stage: str = "AWSCURRENT") -> tuple[str, str | None] | None:
        """(SecretString, VersionId) of the version staged ``stage``, or None where SecretsManagerBackend finds
        nothing; throttling, 5xx answers and dropped connections are retried within the deadline."""
        what = f"reading {name} ({stage}) from AWS Secrets Manager"
        return with_retries(lambda: self._get_once(name, deadline, stage), deadline, what=what)

    def _get_once(self, name: str, deadline: Deadline, stage: str) -> tuple[str, str | None] | None:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            HTTPClientError,
            NoCredentialsError,
            NoRegionError,
            SSLError,
        )
        from botocore.exceptions import ConnectionError as BotoConnectionError

        try:
            # botocore cannot be bounded from outside (its credential chain, a peer dripping its answer past
            # the per-read timeout): the call runs in a worker that this resolution stops waiting for at the deadline
            response = call_within(
                lambda: self._get_client().get_secret_value(SecretId=name, VersionStage=stage),
                deadline,
                what=f"reading {name} from AWS Secrets Manager",
            )
        except DeadlineExceeded:
            raise SourceError(
                f"AWS Secrets Manager did not answer reading {name} within the deadline of {deadline.seconds:g}s",
                reason="deadline",
            ) from None
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code") or "?")
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _NOT_FOUND:
                log.debug("AWS Secrets Manager has no secret %s staged %s (%s)", name, stage, code)
                return None
            if code in _TRANSIENT_CODES or (isinstance(status, int) and (status >= 500 or status == 429)):
                raise SourceError(
                    f"AWS Secrets Manager unavailable reading {name}: {code} (HTTP {status})", reason="aws_unavailable"
                ) from None
            reason = "aws_forbidden" if code in _DENIED else "aws_error"
            raise SourceError(f"AWS Secrets Manager refused reading {name}: {code}", reason=reason) from None
        except NoCredentialsError:
            raise SourceError(
                f"no AWS credentials found (boto3 chain) reading {name}", reason="aws_credentials"
            ) from None
        except NoRegionError:
            raise SourceError(
                f"no AWS region for Secrets Manager reading {name}: set region_name or AWS_DEFAULT_REGION",
                reason="bad_config",
            ) from None
        except SSLError:
            raise SourceError(
                f"TLS verification failed for AWS Secrets Manager reading {name} (see verify)", reason="aws_tls"
            ) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise SourceError(
                f"AWS Secrets Manager unreachable reading {name}: {type(exc).__name__}", reason="aws_unreachable"
            ) from None
        except BotoCoreError as exc:
            raise SourceError(
                f"AWS Secrets Manager request failed reading {name}: {type(exc).__name__}", reason="aws_error"
            ) from None
        value = response.get("SecretString")
        if value is None:  # a binary secret: SecretsManagerBackend reads nothing either
            return None
        version = response.get("VersionId")
        return value, str(version) if version else None

    # -- the client -------------------------------------------------------------------------------

    def _get_client(self) -> Any:
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:
            if self._client is None or self._pid != os.getpid():
                self._client = self._build_client()
                self._pid = os.getpid()
                self.client_builds += 1
            return self._client

    def _build_client(self) -> Any:
        withhold_secret_strings_from_botocore_logs()
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ProfileNotFound

        s = self.settings
        config = Config(
            **{
                "connect_timeout": self._timeout,
                "read_timeout": self._timeout,
                # one attempt per call: _get retries within the deadline (botocore's back-off does not know it)
                "retries": {"mode": "standard", "total_max_attempts": 1},
                **s.config_kwargs,
            }
        )
        session_kwargs = {
            "aws_access_key_id": s.credentials.get("aws_access_key_id"),
            "aws_secret_access_key": s.credentials.get("aws_secret_access_key"),
            "aws_session_token": s.credentials.get("aws_session_token"),
            "region_name": s.region_name,
            "profile_name": s.profile_name,
        }
        try:
            session = boto3.session.Session(**{k: v for k, v in session_kwargs.items() if v is not None})
            if s.role_arn:
                session = self._assumed_role_session(session, config)
        except ProfileNotFound:
            raise SourceError(
                f"profile_name {s.profile_name!r} is not in the AWS config", reason="bad_config"
            ) from None
        except BotoCoreError as exc:
            raise SourceError(
                f"cannot set up the AWS session: {type(exc).__name__}", reason="aws_credentials"
            ) from None
        client_kwargs = {
            "region_name": s.region_name,
            "verify": s.verify,
            "endpoint_url": s.endpoint_url,
            "api_version": s.api_version,
            "use_ssl": s.use_ssl,
        }
        return session.client(
            "secretsmanager", config=config, **{k: v for k, v in client_kwargs.items() if v is not None}
        )

    def _assumed_role_session(self, base: Any, config: Any) -> Any:
        """A session with the role's credentials from STS, refreshed by botocore shortly before they expire.

        As SecretsManagerBackend: the STS client is made from the base session (explicit keys, profile or
        the default chain) and never uses the global ``endpoint_url``; ``service_config.sts.endpoint_url``
        (or botocore's own endpoint settings) points it elsewhere.
        """
        import boto3
        import botocore.credentials
        import botocore.session
        from botocore.exceptions import ClientError

        s = self.settings
        sts = base.client("sts", config=config, **({"endpoint_url": s.sts_endpoint_url} if s.sts_endpoint_url else {}))

        def refresh() -> dict[str, Any]:
            kwargs = {"RoleSessionName": ROLE_SESSION_NAME, **s.assume_role_kwargs, "RoleArn": s.role_arn}
            try:
                answer = sts.assume_role(**kwargs)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", "?"))
                raise SourceError(f"STS refused assuming role {s.role_arn}: {code}", reason="aws_forbidden") from None
            creds = answer["Credentials"]
            mask(creds.get("SecretAccessKey"), creds.get("SessionToken"))
            return {
                "access_key": creds["AccessKeyId"],
                "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"],
                "expiry_time": creds["Expiration"].isoformat(),
            }

        credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
            metadata=refresh(), refresh_using=refresh, method="sts-assume-role"
        )
        core = botocore.session.get_session()
        core._credentials = credentials
        core.set_config_variable("region", base.region_name)
        return boto3.session.Session(botocore_session=core, **({"region_name": s.region_name} if s.region_name else {}))


class _WithholdSecretStrings(logging.Filter):
    """botocore logs raw request and response bodies at DEBUG: a GetSecretValue answer holds the secret itself,
    before anything could register it with Airflow's masker. Such records keep their place but lose the body."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:
            return True
        if "SecretString" in text or "SecretBinary" in text:
            record.msg, record.args = (
                "(a Secrets Manager body, withheld by kong-secrets-backend: it holds a secret)",
                None,
            )
        return True


_FILTER = _WithholdSecretStrings()


def withhold_secret_strings_from_botocore_logs() -> None:
    """Attach the filter to the botocore loggers that print bodies (idempotent)."""
    for name in ("botocore.parsers", "botocore.endpoint", "botocore.hooks", "botocore.retryhandler"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _json_object(value: str, name: str) -> dict[str, Any]:
    try:
        data = json.loads(value)
    except ValueError:
        raise SecretFormatError(f"secret {name} is not valid JSON") from None
    if not isinstance(data, dict):
        raise SecretFormatError(f"secret {name} must hold a JSON object, not {type(data).__name__}")
    return data
