a = mmap 0 4p rw private|anonymous
write $a 4p 0x1
madvise $a+1p 2p dontneed
smaps
