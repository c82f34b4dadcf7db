a = mmap 0 4p rw private|anonymous
write $a 4p 0x5
mprotect $a+2p 2p r
madvise $a 4p dontneed     => ok
read $a+3p 2
maps
