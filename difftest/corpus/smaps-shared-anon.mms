a = mmap 0 4p rw shared|anonymous
write $a 2p 0x1
smaps
