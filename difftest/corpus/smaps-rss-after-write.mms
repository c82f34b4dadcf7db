a = mmap 0 8p rw private|anonymous
write $a+2p 3p 0x1
smaps
