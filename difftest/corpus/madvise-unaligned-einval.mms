a = mmap 0 2p rw private|anonymous
madvise $a+1 1p dontneed   => EINVAL
