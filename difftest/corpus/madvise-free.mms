a = mmap 0 2p rw private|anonymous
write $a 2p 0x41
madvise $a 2p free         => ok
write $a+1p 1 0x42
read $a+1p 2
