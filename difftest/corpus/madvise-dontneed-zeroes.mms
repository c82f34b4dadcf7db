a = mmap 0 2p rw private|anonymous
write $a 2p 0x41
madvise $a 1p dontneed     => ok
read $a 2
read $a+1p 2
mincore $a 2p
