a = mmap 0 1p rw shared_validate|anonymous
write $a 1p 0x11
read $a 2
