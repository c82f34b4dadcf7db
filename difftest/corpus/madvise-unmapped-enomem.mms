a = mmap 0 1p rw private|anonymous
munmap $a 1p
madvise $a 1p willneed     => ENOMEM
