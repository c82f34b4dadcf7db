a = mmap 0 1p rw private|anonymous
madvise $a 1p remove       => EINVAL
