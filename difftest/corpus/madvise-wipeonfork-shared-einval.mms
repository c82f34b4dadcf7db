a = mmap 0 1p rw shared|anonymous
madvise $a 1p wipeonfork   => EINVAL
