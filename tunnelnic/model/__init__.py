"""Pure-Python reference models of the datapath (the executable specification).

- :func:`parse`: parser + classifier, frame bytes and profile table -> parse record
  (docs/parse-record.md).
- :func:`encode_record` / :func:`decode_record`: that record <-> the bits of
  :func:`hw.layouts.ParseRecord` (to drive or check a stream's ``meta``/``tuser``).
"""

from .parse import parse, flow_key, empty_record, ones_sum
from .record import encode_record, decode_record

__all__ = ["parse", "flow_key", "empty_record", "ones_sum", "encode_record", "decode_record"]
