# MADV_DONTNEED cannot be applied to locked pages.
a = mmap 0 2p rw private|anonymous
mlock $a 2p
madvise $a 2p dontneed     => EINVAL
