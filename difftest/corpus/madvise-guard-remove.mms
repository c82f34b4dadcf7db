a = mmap 0 3p rw private|anonymous
madvise $a+1p 1p guard_install
madvise $a+1p 1p guard_remove   => ok
read $a+1p 2               => ok
