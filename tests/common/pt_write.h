/* pt_write.h — (tests only) a safetensors file written again as PyTorch `.bin` weights:
 * torch.save of an OrderedDict state_dict, each tensor in its own dtype over its own
 * storage, through the same pickle writer and zip container dhf export uses. */
#ifndef DHF_TESTS_COMMON_PT_WRITE_H
#define DHF_TESTS_COMMON_PT_WRITE_H

/* 0, or -1 with a message. */
int test_safetensors_to_bin(const char *st_path, const char *bin_path);

#endif
