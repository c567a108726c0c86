"""Every number of envelope version 1; docs/format.md explains each."""

MAGIC = b"\x89CSEAL\r\n"
VERSION = 1
CIPHER_AES_256_GCM = 1
COMPRESSION_ZSTD = 1

PREAMBLE_LENGTH = 16  # magic, version, cipher, compression, shift, length
MIN_HEADER_LENGTH = 128
MAX_HEADER_LENGTH = 65536
SALT_LENGTH = 16
DIGEST_LENGTH = 32
MAC_LENGTH = 32

MIN_SEGMENT_SHIFT = 16
MAX_SEGMENT_SHIFT = 24
DEFAULT_SEGMENT_SHIFT = 20

MAX_PREFIX_LENGTH = 1 << 40
MAX_DUMP_SIZE = 1 << 56
MAX_KEY_ENTRIES = 8
MAX_METADATA_LENGTH = 16384

FLAG_TRUNCATED = 0x0001
KNOWN_FLAGS = FLAG_TRUNCATED

DUMP_PROCESS = 1
DUMP_KERNEL = 2
DUMP_VM = 3
DUMP_FILE = 4
DUMP_TYPE_NAMES = {
    DUMP_PROCESS: "process",
    DUMP_KERNEL: "kernel",
    DUMP_VM: "vm",
    DUMP_FILE: "file",
}
DUMP_TYPE_BY_NAME = {v: k for k, v in DUMP_TYPE_NAMES.items()}

TAG_LENGTH = 16
RECORD_LENGTH_SIZE = 4
MIN_RECORD_LENGTH = 1 + TAG_LENGTH  # an empty raw segment
RECORD_OVERHEAD = 1 + TAG_LENGTH  # encoding byte and tag beyond the segment

ENCODING_ZEROS = 0
ENCODING_RAW = 1
ENCODING_ZSTD = 2

INFO_HEADER = b"coreseal v1 header"
INFO_PAYLOAD = b"coreseal v1 payload"

# Where a kdump-style plain header block usually ends; describe looks here
# when no envelope sits at the offset it was given.
COMMON_PREFIX_OFFSET = 4096
