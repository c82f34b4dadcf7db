# madvise(2): ENOMEM for unmapped pages in the range; the mapped ones are advised.
a = mmap 0 3p rw private|anonymous
write $a 3p 0x1
munmap $a+1p 1p
madvise $a 3p dontneed     => ENOMEM
read $a+2p 1
