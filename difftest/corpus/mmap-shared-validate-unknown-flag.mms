# MAP_SHARED_VALIDATE rejects flags it does not know.
mmap 0 1p rw shared_validate|anonymous|0x10000000
