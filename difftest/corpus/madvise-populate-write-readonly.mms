a = mmap 0 2p r private|anonymous
madvise $a 2p populate_write
