from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AgentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_STATUS_UNSPECIFIED: _ClassVar[AgentStatus]
    AGENT_ONLINE: _ClassVar[AgentStatus]
    AGENT_OFFLINE: _ClassVar[AgentStatus]
    AGENT_STOPPED: _ClassVar[AgentStatus]

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_PENDING: _ClassVar[RunStatus]
    RUN_RUNNING: _ClassVar[RunStatus]
    RUN_SUCCEEDED: _ClassVar[RunStatus]
    RUN_FAILED: _ClassVar[RunStatus]
    RUN_CANCELLED: _ClassVar[RunStatus]
    RUN_TIMED_OUT: _ClassVar[RunStatus]
    RUN_LOST: _ClassVar[RunStatus]
    RUN_REJECTED: _ClassVar[RunStatus]

class OutputStream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTPUT_STREAM_UNSPECIFIED: _ClassVar[OutputStream]
    STDOUT: _ClassVar[OutputStream]
    STDERR: _ClassVar[OutputStream]

class RunKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_COMMAND: _ClassVar[RunKind]
    RUN_SHELL: _ClassVar[RunKind]

class AgentEventType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AGENT_EVENT_UNSPECIFIED: _ClassVar[AgentEventType]
    AGENT_REGISTERED: _ClassVar[AgentEventType]
    AGENT_UPDATED: _ClassVar[AgentEventType]
    AGENT_WENT_ONLINE: _ClassVar[AgentEventType]
    AGENT_WENT_OFFLINE: _ClassVar[AgentEventType]
    AGENT_WENT_STOPPED: _ClassVar[AgentEventType]
    AGENT_DELETED: _ClassVar[AgentEventType]
AGENT_STATUS_UNSPECIFIED: AgentStatus
AGENT_ONLINE: AgentStatus
AGENT_OFFLINE: AgentStatus
AGENT_STOPPED: AgentStatus
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_PENDING: RunStatus
RUN_RUNNING: RunStatus
RUN_SUCCEEDED: RunStatus
RUN_FAILED: RunStatus
RUN_CANCELLED: RunStatus
RUN_TIMED_OUT: RunStatus
RUN_LOST: RunStatus
RUN_REJECTED: RunStatus
OUTPUT_STREAM_UNSPECIFIED: OutputStream
STDOUT: OutputStream
STDERR: OutputStream
RUN_COMMAND: RunKind
RUN_SHELL: RunKind
AGENT_EVENT_UNSPECIFIED: AgentEventType
AGENT_REGISTERED: AgentEventType
AGENT_UPDATED: AgentEventType
AGENT_WENT_ONLINE: AgentEventType
AGENT_WENT_OFFLINE: AgentEventType
AGENT_WENT_STOPPED: AgentEventType
AGENT_DELETED: AgentEventType

class AgentInfo(_message.Message):
    __slots__ = ("name", "address", "version", "hostname", "os", "labels", "status", "registered_at", "last_seen", "running", "facts")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    version: str
    hostname: str
    os: str
    labels: _containers.ScalarMap[str, str]
    status: AgentStatus
    registered_at: float
    last_seen: float
    running: int
    facts: Facts
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., version: _Optional[str] = ..., hostname: _Optional[str] = ..., os: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., status: _Optional[_Union[AgentStatus, str]] = ..., registered_at: _Optional[float] = ..., last_seen: _Optional[float] = ..., running: _Optional[int] = ..., facts: _Optional[_Union[Facts, _Mapping]] = ...) -> None: ...

class Facts(_message.Message):
    __slots__ = ("cpus", "load1", "load5", "load15", "mem_total", "mem_available", "disk_total", "disk_used", "uptime_s", "kernel", "os", "arch", "addresses")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    LOAD1_FIELD_NUMBER: _ClassVar[int]
    LOAD5_FIELD_NUMBER: _ClassVar[int]
    LOAD15_FIELD_NUMBER: _ClassVar[int]
    MEM_TOTAL_FIELD_NUMBER: _ClassVar[int]
    MEM_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    DISK_TOTAL_FIELD_NUMBER: _ClassVar[int]
    DISK_USED_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    KERNEL_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    ADDRESSES_FIELD_NUMBER: _ClassVar[int]
    cpus: int
    load1: float
    load5: float
    load15: float
    mem_total: int
    mem_available: int
    disk_total: int
    disk_used: int
    uptime_s: int
    kernel: str
    os: str
    arch: str
    addresses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cpus: _Optional[int] = ..., load1: _Optional[float] = ..., load5: _Optional[float] = ..., load15: _Optional[float] = ..., mem_total: _Optional[int] = ..., mem_available: _Optional[int] = ..., disk_total: _Optional[int] = ..., disk_used: _Optional[int] = ..., uptime_s: _Optional[int] = ..., kernel: _Optional[str] = ..., os: _Optional[str] = ..., arch: _Optional[str] = ..., addresses: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentFacts(_message.Message):
    __slots__ = ("name", "facts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    facts: Facts
    def __init__(self, name: _Optional[str] = ..., facts: _Optional[_Union[Facts, _Mapping]] = ...) -> None: ...

class OutputChunk(_message.Message):
    __slots__ = ("stream", "data", "seq")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    stream: OutputStream
    data: bytes
    seq: int
    def __init__(self, stream: _Optional[_Union[OutputStream, str]] = ..., data: _Optional[bytes] = ..., seq: _Optional[int] = ...) -> None: ...

class RunInfo(_message.Message):
    __slots__ = ("run_id", "job_id", "agent", "command", "requested_by", "status", "exit_code", "signal", "created_at", "started_at", "finished_at", "error", "stdout_bytes", "stderr_bytes", "dropped_bytes", "timeout_s", "kind")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_BY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    STDERR_BYTES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_BYTES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job_id: str
    agent: str
    command: str
    requested_by: str
    status: RunStatus
    exit_code: int
    signal: int
    created_at: float
    started_at: float
    finished_at: float
    error: str
    stdout_bytes: int
    stderr_bytes: int
    dropped_bytes: int
    timeout_s: float
    kind: RunKind
    def __init__(self, run_id: _Optional[str] = ..., job_id: _Optional[str] = ..., agent: _Optional[str] = ..., command: _Optional[str] = ..., requested_by: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., created_at: _Optional[float] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., error: _Optional[str] = ..., stdout_bytes: _Optional[int] = ..., stderr_bytes: _Optional[int] = ..., dropped_bytes: _Optional[int] = ..., timeout_s: _Optional[float] = ..., kind: _Optional[_Union[RunKind, str]] = ...) -> None: ...

class WindowSize(_message.Message):
    __slots__ = ("rows", "cols")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLS_FIELD_NUMBER: _ClassVar[int]
    rows: int
    cols: int
    def __init__(self, rows: _Optional[int] = ..., cols: _Optional[int] = ...) -> None: ...

class Pty(_message.Message):
    __slots__ = ("term", "size")
    TERM_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    term: str
    size: WindowSize
    def __init__(self, term: _Optional[str] = ..., size: _Optional[_Union[WindowSize, _Mapping]] = ...) -> None: ...

class RunInput(_message.Message):
    __slots__ = ("stdin", "eof", "resize")
    STDIN_FIELD_NUMBER: _ClassVar[int]
    EOF_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    stdin: bytes
    eof: bool
    resize: WindowSize
    def __init__(self, stdin: _Optional[bytes] = ..., eof: _Optional[bool] = ..., resize: _Optional[_Union[WindowSize, _Mapping]] = ...) -> None: ...

class InputRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class AgentUp(_message.Message):
    __slots__ = ("hello", "beat", "goodbye", "done", "started")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    BEAT_FIELD_NUMBER: _ClassVar[int]
    GOODBYE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    hello: RegisterRequest
    beat: Beat
    goodbye: Goodbye
    done: RunDone
    started: RunReport
    def __init__(self, hello: _Optional[_Union[RegisterRequest, _Mapping]] = ..., beat: _Optional[_Union[Beat, _Mapping]] = ..., goodbye: _Optional[_Union[Goodbye, _Mapping]] = ..., done: _Optional[_Union[RunDone, _Mapping]] = ..., started: _Optional[_Union[RunReport, _Mapping]] = ...) -> None: ...

class RunDone(_message.Message):
    __slots__ = ("run_id", "events")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    events: _containers.RepeatedCompositeFieldContainer[ExecuteEvent]
    def __init__(self, run_id: _Optional[str] = ..., events: _Optional[_Iterable[_Union[ExecuteEvent, _Mapping]]] = ...) -> None: ...

class Beat(_message.Message):
    __slots__ = ("running", "facts")
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    running: int
    facts: Facts
    def __init__(self, running: _Optional[int] = ..., facts: _Optional[_Union[Facts, _Mapping]] = ...) -> None: ...

class Goodbye(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MasterDown(_message.Message):
    __slots__ = ("welcome", "execute", "cancel", "shutdown", "pace")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    EXECUTE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    SHUTDOWN_FIELD_NUMBER: _ClassVar[int]
    PACE_FIELD_NUMBER: _ClassVar[int]
    welcome: RegisterResponse
    execute: ExecuteRequest
    cancel: CancelRequest
    shutdown: ShutdownRequest
    pace: Pace
    def __init__(self, welcome: _Optional[_Union[RegisterResponse, _Mapping]] = ..., execute: _Optional[_Union[ExecuteRequest, _Mapping]] = ..., cancel: _Optional[_Union[CancelRequest, _Mapping]] = ..., shutdown: _Optional[_Union[ShutdownRequest, _Mapping]] = ..., pace: _Optional[_Union[Pace, _Mapping]] = ...) -> None: ...

class Pace(_message.Message):
    __slots__ = ("heartbeat_interval_s",)
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    def __init__(self, heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class RunReport(_message.Message):
    __slots__ = ("run_id", "event")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    event: ExecuteEvent
    def __init__(self, run_id: _Optional[str] = ..., event: _Optional[_Union[ExecuteEvent, _Mapping]] = ...) -> None: ...

class ReportAck(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("name", "address", "version", "hostname", "os", "labels", "instance_id", "facts")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    address: str
    version: str
    hostname: str
    os: str
    labels: _containers.ScalarMap[str, str]
    instance_id: str
    facts: Facts
    def __init__(self, name: _Optional[str] = ..., address: _Optional[str] = ..., version: _Optional[str] = ..., hostname: _Optional[str] = ..., os: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., instance_id: _Optional[str] = ..., facts: _Optional[_Union[Facts, _Mapping]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("heartbeat_interval_s",)
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    def __init__(self, heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("name", "instance_id", "running", "facts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    instance_id: str
    running: int
    facts: Facts
    def __init__(self, name: _Optional[str] = ..., instance_id: _Optional[str] = ..., running: _Optional[int] = ..., facts: _Optional[_Union[Facts, _Mapping]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("heartbeat_interval_s",)
    HEARTBEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    heartbeat_interval_s: float
    def __init__(self, heartbeat_interval_s: _Optional[float] = ...) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("name", "instance_id")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_ID_FIELD_NUMBER: _ClassVar[int]
    name: str
    instance_id: str
    def __init__(self, name: _Optional[str] = ..., instance_id: _Optional[str] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAgentsResponse(_message.Message):
    __slots__ = ("agents",)
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentInfo]
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentInfo, _Mapping]]] = ...) -> None: ...

class AgentRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteAgentResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Target(_message.Message):
    __slots__ = ("names", "labels", "all")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAMES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    all: bool
    def __init__(self, names: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., all: _Optional[bool] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("target", "command", "timeout_s", "parallel", "no_output", "env", "cwd", "stdin", "pty")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TARGET_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_FIELD_NUMBER: _ClassVar[int]
    NO_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    PTY_FIELD_NUMBER: _ClassVar[int]
    target: Target
    command: str
    timeout_s: float
    parallel: int
    no_output: bool
    env: _containers.ScalarMap[str, str]
    cwd: str
    stdin: bool
    pty: Pty
    def __init__(self, target: _Optional[_Union[Target, _Mapping]] = ..., command: _Optional[str] = ..., timeout_s: _Optional[float] = ..., parallel: _Optional[int] = ..., no_output: _Optional[bool] = ..., env: _Optional[_Mapping[str, str]] = ..., cwd: _Optional[str] = ..., stdin: _Optional[bool] = ..., pty: _Optional[_Union[Pty, _Mapping]] = ...) -> None: ...

class InteractUp(_message.Message):
    __slots__ = ("request", "input")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    request: RunRequest
    input: RunInput
    def __init__(self, request: _Optional[_Union[RunRequest, _Mapping]] = ..., input: _Optional[_Union[RunInput, _Mapping]] = ...) -> None: ...

class JobStarted(_message.Message):
    __slots__ = ("runs", "warning")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunInfo]
    warning: str
    def __init__(self, runs: _Optional[_Iterable[_Union[RunInfo, _Mapping]]] = ..., warning: _Optional[str] = ...) -> None: ...

class RunEvent(_message.Message):
    __slots__ = ("job_id", "run_id", "agent", "job", "started", "output", "finished", "dropped")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    run_id: str
    agent: str
    job: JobStarted
    started: RunInfo
    output: OutputChunk
    finished: RunInfo
    dropped: int
    def __init__(self, job_id: _Optional[str] = ..., run_id: _Optional[str] = ..., agent: _Optional[str] = ..., job: _Optional[_Union[JobStarted, _Mapping]] = ..., started: _Optional[_Union[RunInfo, _Mapping]] = ..., output: _Optional[_Union[OutputChunk, _Mapping]] = ..., finished: _Optional[_Union[RunInfo, _Mapping]] = ..., dropped: _Optional[int] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("cancelled",)
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    cancelled: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, cancelled: _Optional[_Iterable[str]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("agent", "status", "limit", "job_id")
    AGENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    agent: str
    status: RunStatus
    limit: int
    job_id: str
    def __init__(self, agent: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., limit: _Optional[int] = ..., job_id: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunInfo]
    def __init__(self, runs: _Optional[_Iterable[_Union[RunInfo, _Mapping]]] = ...) -> None: ...

class RunRef(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class StreamRunRequest(_message.Message):
    __slots__ = ("run_id", "follow")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    follow: bool
    def __init__(self, run_id: _Optional[str] = ..., follow: _Optional[bool] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("include_output",)
    INCLUDE_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    include_output: bool
    def __init__(self, include_output: _Optional[bool] = ...) -> None: ...

class AgentEvent(_message.Message):
    __slots__ = ("type", "agent")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    type: AgentEventType
    agent: AgentInfo
    def __init__(self, type: _Optional[_Union[AgentEventType, str]] = ..., agent: _Optional[_Union[AgentInfo, _Mapping]] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("agents", "active_runs", "server_time", "store")
    AGENTS_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_RUNS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    agents: _containers.RepeatedCompositeFieldContainer[AgentInfo]
    active_runs: _containers.RepeatedCompositeFieldContainer[RunInfo]
    server_time: float
    store: StoreHealth
    def __init__(self, agents: _Optional[_Iterable[_Union[AgentInfo, _Mapping]]] = ..., active_runs: _Optional[_Iterable[_Union[RunInfo, _Mapping]]] = ..., server_time: _Optional[float] = ..., store: _Optional[_Union[StoreHealth, _Mapping]] = ...) -> None: ...

class StoreHealth(_message.Message):
    __slots__ = ("store", "failing", "cause", "queued", "dropped", "refusing_runs", "warning")
    STORE_FIELD_NUMBER: _ClassVar[int]
    FAILING_FIELD_NUMBER: _ClassVar[int]
    CAUSE_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    REFUSING_RUNS_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    store: str
    failing: bool
    cause: str
    queued: int
    dropped: int
    refusing_runs: bool
    warning: str
    def __init__(self, store: _Optional[str] = ..., failing: _Optional[bool] = ..., cause: _Optional[str] = ..., queued: _Optional[int] = ..., dropped: _Optional[int] = ..., refusing_runs: _Optional[bool] = ..., warning: _Optional[str] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MasterStatus(_message.Message):
    __slots__ = ("version", "started_at", "store")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    version: str
    started_at: float
    store: StoreHealth
    def __init__(self, version: _Optional[str] = ..., started_at: _Optional[float] = ..., store: _Optional[_Union[StoreHealth, _Mapping]] = ...) -> None: ...

class Heartbeats(_message.Message):
    __slots__ = ("names", "at", "facts")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    FACTS_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    at: float
    facts: _containers.RepeatedCompositeFieldContainer[AgentFacts]
    def __init__(self, names: _Optional[_Iterable[str]] = ..., at: _Optional[float] = ..., facts: _Optional[_Iterable[_Union[AgentFacts, _Mapping]]] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("snapshot", "agent", "run", "heartbeats", "store")
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    HEARTBEATS_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    snapshot: Snapshot
    agent: AgentEvent
    run: RunEvent
    heartbeats: Heartbeats
    store: StoreHealth
    def __init__(self, snapshot: _Optional[_Union[Snapshot, _Mapping]] = ..., agent: _Optional[_Union[AgentEvent, _Mapping]] = ..., run: _Optional[_Union[RunEvent, _Mapping]] = ..., heartbeats: _Optional[_Union[Heartbeats, _Mapping]] = ..., store: _Optional[_Union[StoreHealth, _Mapping]] = ...) -> None: ...

class WatchBatch(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ...) -> None: ...

class JoinRequest(_message.Message):
    __slots__ = ("name", "token_id", "csr_pem", "proof")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    PROOF_FIELD_NUMBER: _ClassVar[int]
    name: str
    token_id: str
    csr_pem: bytes
    proof: bytes
    def __init__(self, name: _Optional[str] = ..., token_id: _Optional[str] = ..., csr_pem: _Optional[bytes] = ..., proof: _Optional[bytes] = ...) -> None: ...

class JoinResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_pem")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    ca_pem: bytes
    def __init__(self, certificate_pem: _Optional[bytes] = ..., ca_pem: _Optional[bytes] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("run_id", "command", "timeout_s", "env", "cwd", "stdin", "pty", "beat_interval_s")
    class EnvEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    CWD_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    PTY_FIELD_NUMBER: _ClassVar[int]
    BEAT_INTERVAL_S_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    command: str
    timeout_s: float
    env: _containers.ScalarMap[str, str]
    cwd: str
    stdin: bool
    pty: Pty
    beat_interval_s: float
    def __init__(self, run_id: _Optional[str] = ..., command: _Optional[str] = ..., timeout_s: _Optional[float] = ..., env: _Optional[_Mapping[str, str]] = ..., cwd: _Optional[str] = ..., stdin: _Optional[bool] = ..., pty: _Optional[_Union[Pty, _Mapping]] = ..., beat_interval_s: _Optional[float] = ...) -> None: ...

class ExecStarted(_message.Message):
    __slots__ = ("pid", "started_at")
    PID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    pid: int
    started_at: float
    def __init__(self, pid: _Optional[int] = ..., started_at: _Optional[float] = ...) -> None: ...

class ExecExit(_message.Message):
    __slots__ = ("status", "exit_code", "signal", "started_at", "finished_at", "error")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    status: RunStatus
    exit_code: int
    signal: int
    started_at: float
    finished_at: float
    error: str
    def __init__(self, status: _Optional[_Union[RunStatus, str]] = ..., exit_code: _Optional[int] = ..., signal: _Optional[int] = ..., started_at: _Optional[float] = ..., finished_at: _Optional[float] = ..., error: _Optional[str] = ...) -> None: ...

class ExecuteEvent(_message.Message):
    __slots__ = ("started", "output", "exit")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    started: ExecStarted
    output: OutputChunk
    exit: ExecExit
    def __init__(self, started: _Optional[_Union[ExecStarted, _Mapping]] = ..., output: _Optional[_Union[OutputChunk, _Mapping]] = ..., exit: _Optional[_Union[ExecExit, _Mapping]] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelResponse(_message.Message):
    __slots__ = ("found",)
    FOUND_FIELD_NUMBER: _ClassVar[int]
    found: bool
    def __init__(self, found: _Optional[bool] = ...) -> None: ...

class ShutdownRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ShutdownResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
