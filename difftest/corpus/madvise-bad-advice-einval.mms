a = mmap 0 1p rw private|anonymous
madvise $a 1p 99           => EINVAL
madvise $a 1p 5            => EINVAL
madvise $a 1p 1000         => EINVAL
