a = mmap 0 2p rw private|anonymous
write $a 2p 0x1
madvise $a 2p dontneed
mincore $a 2p
