"""The member's journal: checksummed records with LSN and epoch, in segment files.

:mod:`.record` is the pure record format (what replication streams verbatim);
:mod:`.segments` keeps records on disk, recovers after a crash, purges and
truncates.
"""

from .record import (
    MAX_DB_NAME,
    MAX_PAYLOAD,
    BadRecord,
    NewRecord,
    Record,
    RecordError,
    RecordKind,
    ScanResult,
    TruncatedRecord,
    decode_record,
    encode_record,
    scan,
)
from .segments import DEFAULT_SEGMENT_BYTES, Journal, RecoveryReport, SegmentInfo

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "MAX_DB_NAME",
    "MAX_PAYLOAD",
    "BadRecord",
    "Journal",
    "NewRecord",
    "Record",
    "RecordError",
    "RecordKind",
    "RecoveryReport",
    "ScanResult",
    "SegmentInfo",
    "TruncatedRecord",
    "decode_record",
    "encode_record",
    "scan",
]
