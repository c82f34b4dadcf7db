a = mmap 0 2p rw shared|anonymous
write $a 2p 0x7
madvise $a 1p remove       => ok
read $a 2
read $a+1p 2
