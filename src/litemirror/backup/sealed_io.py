"""Reading a sealed file as a plain, forward-only file object (for zstd and the journal reader)."""

from __future__ import annotations

from typing import BinaryIO

from .sealed import HEADER_SIZE, Key, Opener, SealedError, decode_header, plain_size

_READ = 1 << 20


class SealedReader:
    """The plaintext of the sealed file ``f``, read in order; memory stays at one chunk.

    ``seek`` may only go forward (the journal reader seeks past the segment
    header it has just read). Damage, a cut or a wrong key raise
    :class:`SealedError` naming ``where``.
    """

    def __init__(self, f: BinaryIO, keys: dict[str, Key], where: str, sealed_bytes: int) -> None:
        self._f = f
        self._opener = Opener(keys, where)
        self._where = where
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        head = f.read(HEADER_SIZE)
        self.size = plain_size(sealed_bytes, decode_header(head, where).shift)
        self._buf += self._opener.update(head)  # checks the key before anything is read

    def _fill(self, n: int) -> None:
        while len(self._buf) < n and not self._eof:
            data = self._f.read(_READ)
            if data:
                self._buf += self._opener.update(data)
            else:
                self._eof = True
                self._buf += self._opener.finish()

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            self._fill(1 << 62)
            n = len(self._buf)
        self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._pos += len(out)
        return out

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence != 0 or pos < self._pos:
            raise SealedError(f"{self._where}: a sealed file is read forward only")
        self.read(pos - self._pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readable(self) -> bool:
        return True

    @property
    def name(self) -> str:
        return self._where
