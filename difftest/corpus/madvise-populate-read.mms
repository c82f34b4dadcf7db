a = mmap 0 4p rw private|anonymous
madvise $a 4p populate_read  => ok
mincore $a 4p
