a = mmap 0 2p none private|anonymous
madvise $a 2p populate_read
