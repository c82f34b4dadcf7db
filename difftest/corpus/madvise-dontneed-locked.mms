a = mmap 0 2p rw private|anonymous
write $a 2p 0x3
mlock $a 2p
madvise $a 2p dontneed_locked  => ok
read $a 2
