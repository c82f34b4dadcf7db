a = mmap 0 4p rw private|anonymous
madvise $a 4p populate_write => ok
mincore $a 4p
smaps
