a = mmap 0 4p rw private|anonymous
write $a 4p 0x2
madvise $a 4p cold
madvise $a 4p pageout
read $a+3p 2
smaps
