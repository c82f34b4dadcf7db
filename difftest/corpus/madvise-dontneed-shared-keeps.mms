a = mmap 0 1p rw shared|anonymous
write $a 1p 0x41
madvise $a 1p dontneed     => ok
read $a 2
